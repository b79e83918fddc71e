//! Capability flags and defaults a plugin declares (Inseq's per-method flags). The host reads
//! every flag: each one below says what it changes.

use abi_stable::StableAbi;

/// A set of capability flags.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct Flags(u32);

impl Flags {
    /// No flag set.
    pub const NONE: Self = Self(0);
    /// Method: asks the host for baselines ([`crate::Host::baselines`]). Without it the host
    /// refuses that call.
    pub const USES_BASELINES: Self = Self(1);
    /// Method: asks the host for gradients ([`crate::Host::gradients`]). Without it the host
    /// refuses that call, and the attributed function need not be differentiable.
    pub const USES_GRADIENTS: Self = Self(1 << 2);
    /// Method: asks the host for internals ([`crate::Host::internals`]: attention weights,
    /// hidden states, interventions). Without it the host refuses that call.
    pub const USES_INTERNALS: Self = Self(1 << 4);
    /// Method: attributes a named layer (`target_layer`) rather than input embeddings; the host
    /// refuses `attribute_target` with it on encoder-decoder models.
    pub const LAYER_METHOD: Self = Self(1 << 5);
    /// Method: ignores the attributed function (internals methods are output-agnostic), so any
    /// attributed function is accepted.
    pub const OUTPUT_AGNOSTIC: Self = Self(1 << 6);
    /// Step function: needs contrastive inputs (`contrast_targets`, `contrast_sources`...); the
    /// host refuses to run it without them and passes their logits.
    pub const NEEDS_CONTRAST: Self = Self(1 << 7);
    /// Step function: needs Monte Carlo dropout samples of the logits (as many as
    /// [`crate::StepFunctionPlugin::dropout_samples`] says).
    pub const NEEDS_DROPOUT_SAMPLES: Self = Self(1 << 8);
    /// Step function: cannot be differentiated (usable as a step score, or as the target of a
    /// method without [`Flags::USES_GRADIENTS`]).
    pub const NOT_DIFFERENTIABLE: Self = Self(1 << 9);
    /// Step function: as a gradient target, needs the contrast input's own forward
    /// (`contrast_force_inputs`), e.g. a divergence between two distributions.
    pub const NEEDS_FORCED_CONTRAST: Self = Self(1 << 10);

    const ALL: [(Flags, &'static str); 9] = [
        (Flags::USES_BASELINES, "uses_baselines"),
        (Flags::USES_GRADIENTS, "uses_gradients"),
        (Flags::USES_INTERNALS, "uses_internals"),
        (Flags::LAYER_METHOD, "layer_method"),
        (Flags::OUTPUT_AGNOSTIC, "output_agnostic"),
        (Flags::NEEDS_CONTRAST, "needs_contrast"),
        (Flags::NEEDS_DROPOUT_SAMPLES, "needs_dropout_samples"),
        (Flags::NOT_DIFFERENTIABLE, "not_differentiable"),
        (Flags::NEEDS_FORCED_CONTRAST, "needs_forced_contrast"),
    ];

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two sets.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The raw bits (the wire format).
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Flags from raw bits; unknown bits are dropped.
    pub fn from_bits(bits: u32) -> Self {
        let known = Self::ALL.iter().fold(0, |acc, (f, _)| acc | f.0);
        Self(bits & known)
    }

    /// Names of the flags that are set, for `rinseq plugins info`.
    pub fn names(self) -> Vec<&'static str> {
        Self::ALL
            .iter()
            .filter(|(f, _)| self.contains(*f))
            .map(|(_, n)| *n)
            .collect()
    }
}

impl std::ops::BitOr for Flags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

/// The shape class of a method's output (Inseq's Granular / Coarse / MultiDimensional): what
/// follows `(len, n_steps)` in each attribution tensor.
#[repr(u8)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Debug)]
pub enum OutputKind {
    /// One score per embedding dimension: `(len, steps, hidden)`.
    Granular,
    /// One score per token: `(len, steps)`.
    Coarse,
    /// `extra_dims` extra dimensions, e.g. `(len, steps, layers, heads)`.
    MultiDimensional {
        /// How many dimensions follow `(len, steps)`.
        extra_dims: u8,
    },
}

impl OutputKind {
    /// A short name for listings.
    pub fn name(self) -> &'static str {
        match self {
            Self::Granular => "granular",
            Self::Coarse => "coarse",
            Self::MultiDimensional { .. } => "multi-dimensional",
        }
    }

    /// The number of dimensions after `(len, n_steps)`.
    pub fn extra_dims(self) -> usize {
        match self {
            Self::Granular => 1,
            Self::Coarse => 0,
            Self::MultiDimensional { extra_dims } => extra_dims as usize,
        }
    }
}

/// Flags and defaults of one plugin.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Capabilities {
    /// Boolean capabilities.
    pub flags: Flags,
    /// Output class (attribution methods only).
    pub output: Option<OutputKind>,
    /// Attribution methods: the aggregators applied by default, in order (e.g. `["vnorm"]`);
    /// empty means the output class's default (as Inseq: granular → vector norm,
    /// multi-dimensional → a mean per extra dimension, coarse → none).
    pub default_aggregation: Vec<String>,
    /// Step functions: the function that merges their scores over spans (`prod` for
    /// probabilities, `sum` for entropies...); `None` → the host's default for step scores.
    pub span_aggregation: Option<String>,
}

impl Capabilities {
    /// An attribution method's capabilities: flags, output class and default aggregators.
    pub fn method(flags: Flags, output: OutputKind, default_aggregation: &[&str]) -> Self {
        Self {
            flags,
            output: Some(output),
            default_aggregation: default_aggregation.iter().map(|s| s.to_string()).collect(),
            span_aggregation: None,
        }
    }

    /// A step function's capabilities: flags and the function that aggregates its scores over
    /// merged spans.
    pub fn step_function(flags: Flags, span_aggregation: &str) -> Self {
        Self {
            flags,
            output: None,
            default_aggregation: Vec::new(),
            span_aggregation: Some(span_aggregation.to_string()),
        }
    }
}
