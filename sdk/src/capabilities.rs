//! Capability flags and defaults a plugin declares (Inseq's per-method flags).

use abi_stable::std_types::RString;
use abi_stable::StableAbi;

/// A set of boolean capability flags (a `u32` bitset newtype so that new flags keep the ABI).
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct Flags(pub u32);

impl Flags {
    /// No flag set.
    pub const NONE: Self = Self(0);
    /// Method: needs baseline inputs (integrated gradients, DeepLIFT...).
    pub const USES_BASELINES: Self = Self(1);
    /// Method: one forward at the final step, sliced per step (attention, value zeroing); step
    /// scores are not computed with it.
    pub const FINAL_STEP_ONLY: Self = Self(1 << 1);
    /// Method: uses gradients from the host.
    pub const USES_GRADIENTS: Self = Self(1 << 2);
    /// Method: uses attention weights.
    pub const USES_ATTENTIONS: Self = Self(1 << 3);
    /// Method: uses hidden states or other internals.
    pub const USES_INTERNALS: Self = Self(1 << 4);
    /// Method: attributes a named layer (`target_layer`) rather than input embeddings; such
    /// methods do not support `attribute_target` on encoder-decoder models.
    pub const LAYER_METHOD: Self = Self(1 << 5);
    /// Method: ignores the attributed function (internals methods are output-agnostic).
    pub const OUTPUT_AGNOSTIC: Self = Self(1 << 6);
    /// Step function: needs contrastive inputs (`contrast_targets`, `contrast_sources`...).
    pub const NEEDS_CONTRAST: Self = Self(1 << 7);
    /// Step function: needs Monte Carlo dropout samples of the logits.
    pub const NEEDS_DROPOUT_SAMPLES: Self = Self(1 << 8);
    /// Step function: cannot be differentiated (usable as a step score only).
    pub const NOT_DIFFERENTIABLE: Self = Self(1 << 9);
    /// Step function: as an attribution target, needs the contrast input's own forward
    /// (`contrast_force_inputs`), e.g. a divergence between two distributions.
    pub const NEEDS_FORCED_CONTRAST: Self = Self(1 << 10);

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two sets.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Names of the flags that are set, for `rinseq plugins info`.
    pub fn names(self) -> Vec<&'static str> {
        const ALL: [(Flags, &str); 11] = [
            (Flags::USES_BASELINES, "uses_baselines"),
            (Flags::FINAL_STEP_ONLY, "final_step_only"),
            (Flags::USES_GRADIENTS, "uses_gradients"),
            (Flags::USES_ATTENTIONS, "uses_attentions"),
            (Flags::USES_INTERNALS, "uses_internals"),
            (Flags::LAYER_METHOD, "layer_method"),
            (Flags::OUTPUT_AGNOSTIC, "output_agnostic"),
            (Flags::NEEDS_CONTRAST, "needs_contrast"),
            (Flags::NEEDS_DROPOUT_SAMPLES, "needs_dropout_samples"),
            (Flags::NOT_DIFFERENTIABLE, "not_differentiable"),
            (Flags::NEEDS_FORCED_CONTRAST, "needs_forced_contrast"),
        ];
        ALL.iter()
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

/// The shape class of a method's output (Inseq's Granular / Coarse / MultiDimensional).
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct OutputKind(pub u8);

impl OutputKind {
    /// Not an attribution method (step functions, aggregators).
    pub const NONE: Self = Self(0);
    /// One score per embedding dimension: `(len, steps, hidden)`.
    pub const GRANULAR: Self = Self(1);
    /// One score per token: `(len, steps)`.
    pub const COARSE: Self = Self(2);
    /// Extra dimensions, e.g. `(len, steps, layers, heads)`.
    pub const MULTI_DIMENSIONAL: Self = Self(3);

    /// A short name for listings.
    pub fn name(self) -> &'static str {
        match self {
            Self::GRANULAR => "granular",
            Self::COARSE => "coarse",
            Self::MULTI_DIMENSIONAL => "multi-dimensional",
            _ => "-",
        }
    }
}

/// Flags and defaults of one plugin.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Default)]
pub struct Capabilities {
    /// Boolean capabilities.
    pub flags: Flags,
    /// Output class (attribution methods only).
    pub output: OutputKind,
    /// Number of extra dimensions for [`OutputKind::MULTI_DIMENSIONAL`] outputs.
    pub extra_dims: u8,
    /// Default aggregation: comma-separated aggregator names, e.g. `vnorm` or `mean,mean`
    /// (attribution methods), or the span aggregation function of a step score, e.g. `prod`.
    pub default_aggregation: RString,
}

impl Capabilities {
    /// An attribution method's capabilities: flags, output class and default aggregation.
    pub fn method(flags: Flags, output: OutputKind, default_aggregation: &str) -> Self {
        Self {
            flags,
            output,
            extra_dims: 0,
            default_aggregation: default_aggregation.into(),
        }
    }

    /// A multi-dimensional method with `extra_dims` extra output dimensions.
    pub fn multi_dimensional(flags: Flags, extra_dims: u8, default_aggregation: &str) -> Self {
        Self {
            flags,
            output: OutputKind::MULTI_DIMENSIONAL,
            extra_dims,
            default_aggregation: default_aggregation.into(),
        }
    }

    /// A step function's capabilities: flags and the function that aggregates its scores over
    /// merged spans (`prod` for probabilities, `sum` for entropies...).
    pub fn step_function(flags: Flags, span_aggregation: &str) -> Self {
        Self {
            flags,
            output: OutputKind::NONE,
            extra_dims: 0,
            default_aggregation: span_aggregation.into(),
        }
    }
}
