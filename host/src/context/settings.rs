//! The options of one context attribution (Inseq's `AttributeContextArgs`), their defaults and
//! their checks (Inseq's `__post_init__`).

use serde_json::{Map, Value};

use super::ContextError;

/// How an output context generated together with the current output is split off (Inseq's
/// `--handle_output_context_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputContextStrategy {
    /// Ask the user to confirm the detected context (only on a terminal; otherwise an error
    /// that names the non-interactive alternatives).
    #[default]
    Manual,
    /// Use the detected context without asking.
    Auto,
    /// Never split: a `{context}` output template needs `--output-context-text`.
    Pre,
}

impl std::str::FromStr for OutputContextStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "manual" => Ok(Self::Manual),
            "auto" => Ok(Self::Auto),
            "pre" => Ok(Self::Pre),
            other => Err(format!(
                "handle-output-context-strategy '{other}' is not one of manual, auto, pre"
            )),
        }
    }
}

impl OutputContextStrategy {
    /// Inseq's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Auto => "auto",
            Self::Pre => "pre",
        }
    }
}

/// Every option of `rinseq attribute-context`, with Inseq's names. [`ContextSettings::validate`]
/// fills the template defaults and refuses inconsistent options.
#[derive(Debug, Clone)]
pub struct ContextSettings {
    /// The model, as given (recorded in `info`).
    pub model_name_or_path: String,
    /// The CCI attribution method.
    pub attribution_method: String,
    /// The CCI attributed function (`None`: `probability`, not contrastive).
    pub attributed_fn: Option<String>,
    /// The current input (required, non-empty).
    pub input_current_text: String,
    /// The input context.
    pub input_context_text: Option<String>,
    /// Input template with `{current}` and optionally `{context}`.
    pub input_template: Option<String>,
    /// The output context (forced).
    pub output_context_text: Option<String>,
    /// The current output (forced; generated when `None`).
    pub output_current_text: Option<String>,
    /// Output template with `{current}` and optionally `{context}` before it.
    pub output_template: Option<String>,
    /// Contextless input template (`{current}` required).
    pub contextless_input_current_text: Option<String>,
    /// Contextless output template (`{current}` required).
    pub contextless_output_current_text: Option<String>,
    /// The contrastive step function of CTI.
    pub context_sensitivity_metric: String,
    /// How a generated output context is split off.
    pub handle_output_context_strategy: OutputContextStrategy,
    /// Forced next contextless tokens, one per selected token.
    pub contextless_output_next_tokens: Vec<String>,
    /// Special tokens kept in texts (e.g. `<brk>`).
    pub special_tokens_to_keep: Vec<String>,
    /// Separator between a decoder-only model's input and output.
    pub decoder_input_output_separator: String,
    /// CTI selection: standard deviations above the mean (`None`: no threshold).
    pub context_sensitivity_std_threshold: Option<f64>,
    /// CTI selection: keep the top k.
    pub context_sensitivity_topk: Option<usize>,
    /// Cue highlighting: standard deviations above the mean.
    pub attribution_std_threshold: Option<f64>,
    /// Cue highlighting: the top k.
    pub attribution_topk: Option<usize>,
    /// Print the CTI and CCI attribution tables too.
    pub show_intermediate_outputs: bool,
    /// Generation arguments (HF `generate` kwargs) as given.
    pub generation_kwargs: Map<String, Value>,
    /// Attribution arguments as given.
    pub attribution_kwargs: Map<String, Value>,
    /// Model arguments as given.
    pub model_kwargs: Map<String, Value>,
    /// Whether the output keeps `info`.
    pub add_output_info: bool,
    /// Where the JSON goes (recorded in `info`).
    pub save_path: Option<String>,
    /// Where the HTML view goes (recorded in `info`).
    pub viz_path: Option<String>,
    /// Whether the console view is printed.
    pub show_viz: bool,
}

impl Default for ContextSettings {
    fn default() -> Self {
        Self {
            model_name_or_path: String::new(),
            attribution_method: "saliency".into(),
            attributed_fn: None,
            input_current_text: String::new(),
            input_context_text: None,
            input_template: None,
            output_context_text: None,
            output_current_text: None,
            output_template: None,
            contextless_input_current_text: None,
            contextless_output_current_text: None,
            context_sensitivity_metric: "kl_divergence".into(),
            handle_output_context_strategy: OutputContextStrategy::Manual,
            contextless_output_next_tokens: Vec::new(),
            special_tokens_to_keep: Vec::new(),
            decoder_input_output_separator: " ".into(),
            context_sensitivity_std_threshold: Some(1.0),
            context_sensitivity_topk: None,
            attribution_std_threshold: Some(1.0),
            attribution_topk: None,
            show_intermediate_outputs: false,
            generation_kwargs: Map::new(),
            attribution_kwargs: Map::new(),
            model_kwargs: Map::new(),
            add_output_info: true,
            save_path: None,
            viz_path: None,
            show_viz: true,
        }
    }
}

/// The settings after [`ContextSettings::validate`]: templates filled in.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The settings, every template `Some`.
    pub s: ContextSettings,
    /// The input template.
    pub input_template: String,
    /// The output template.
    pub output_template: String,
    /// The contextless input template.
    pub contextless_input: String,
    /// The contextless output template.
    pub contextless_output: String,
    /// `{context}` is in the input template.
    pub has_input_context: bool,
    /// `{context}` is in the output template.
    pub has_output_context: bool,
    /// Warnings to print (ignored contexts, template suffixes).
    pub warnings: Vec<String>,
}

impl ContextSettings {
    /// Fills the template defaults and checks the options as Inseq does. Unlike Inseq 0.7.1,
    /// the `pre` check runs after the defaults (Inseq reads `output_template` before defaulting
    /// it and fails with a `TypeError` when it is not given).
    pub fn validate(mut self) -> Result<Validated, ContextError> {
        let bad = |m: String| Err(ContextError::BadInput(m));
        if self.input_current_text.is_empty() {
            return bad("--input-current-text is empty: give the current input text".into());
        }
        let input_template = self.input_template.clone().unwrap_or_else(|| {
            if self.input_context_text.is_none() {
                "{current}".into()
            } else {
                "{context} {current}".into()
            }
        });
        let output_template = self.output_template.clone().unwrap_or_else(|| {
            if self.output_context_text.is_none() {
                "{current}".into()
            } else {
                "{context} {current}".into()
            }
        });
        if self.handle_output_context_strategy == OutputContextStrategy::Pre
            && self
                .output_context_text
                .as_deref()
                .is_none_or(str::is_empty)
            && output_template.contains("{context}")
        {
            return bad(format!(
                "--handle-output-context-strategy pre with {{context}} in the output template '{output_template}' needs --output-context-text"
            ));
        }
        let contextless_input = self
            .contextless_input_current_text
            .clone()
            .unwrap_or_else(|| "{current}".into());
        let contextless_output = self
            .contextless_output_current_text
            .clone()
            .unwrap_or_else(|| "{current}".into());
        for (flag, t) in [
            ("--contextless-input-current-text", &contextless_input),
            ("--contextless-output-current-text", &contextless_output),
            ("--input-template", &input_template),
            ("--output-template", &output_template),
        ] {
            if !t.contains("{current}") {
                return bad(format!(
                    "{flag} '{t}' has no {{current}} placeholder: add one"
                ));
            }
        }
        let has_input_context = input_template.contains("{context}");
        let has_output_context = output_template.contains("{context}");
        let mut warnings = Vec::new();
        if self
            .input_context_text
            .as_deref()
            .is_some_and(|c| !c.is_empty())
            && !has_input_context
        {
            warnings.push(format!(
                "the input template '{input_template}' has no {{context}}: --input-context-text is ignored"
            ));
            self.input_context_text = None;
        }
        if self
            .output_context_text
            .as_deref()
            .is_some_and(|c| !c.is_empty())
            && !has_output_context
        {
            warnings.push(format!(
                "the output template '{output_template}' has no {{context}}: --output-context-text is ignored"
            ));
            self.output_context_text = None;
        }
        if has_input_context && self.input_context_text.as_deref().is_none_or(str::is_empty) {
            return bad(format!(
                "the input template '{input_template}' has {{context}} but no --input-context-text was given"
            ));
        }
        if has_output_context
            && output_template.find("{context}") > output_template.find("{current}")
        {
            return bad(format!(
                "{{context}} must come before {{current}} in the output template '{output_template}'"
            ));
        }
        if !output_template.ends_with("{current}") {
            let suffix = output_template
                .split("{current}")
                .nth(1)
                .unwrap_or_default();
            warnings.push(format!(
                "the output template's suffix '{suffix}' must end the current output: force --output-current-text if needed"
            ));
        }
        if let Some(t) = &self.context_sensitivity_topk {
            if *t == 0 {
                return bad("--context-sensitivity-topk must be at least 1".into());
            }
        }
        self.input_template = Some(input_template.clone());
        self.output_template = Some(output_template.clone());
        self.contextless_input_current_text = Some(contextless_input.clone());
        self.contextless_output_current_text = Some(contextless_output.clone());
        Ok(Validated {
            s: self,
            input_template,
            output_template,
            contextless_input,
            contextless_output,
            has_input_context,
            has_output_context,
            warnings,
        })
    }
}

impl Validated {
    /// Inseq's `info`: every argument (Inseq's `AttributeContextArgs.to_dict()` keys).
    pub fn info(&self) -> Map<String, Value> {
        let s = &self.s;
        let opt = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
        let num = |v: Option<f64>| v.map_or(Value::Null, Value::from);
        let entries: Vec<(&str, Value)> = vec![
            ("model_name_or_path", s.model_name_or_path.clone().into()),
            ("attribution_method", s.attribution_method.clone().into()),
            ("device", "cpu".into()),
            ("attributed_fn", opt(&s.attributed_fn)),
            ("attribution_selectors", Value::Null),
            ("attribution_aggregators", Value::Null),
            ("normalize_attributions", false.into()),
            ("rescale_attributions", false.into()),
            ("model_kwargs", Value::Object(s.model_kwargs.clone())),
            ("tokenizer_kwargs", Value::Object(Map::new())),
            (
                "generation_kwargs",
                Value::Object(s.generation_kwargs.clone()),
            ),
            (
                "attribution_kwargs",
                Value::Object(s.attribution_kwargs.clone()),
            ),
            (
                "context_sensitivity_metric",
                s.context_sensitivity_metric.clone().into(),
            ),
            (
                "handle_output_context_strategy",
                s.handle_output_context_strategy.name().into(),
            ),
            (
                "contextless_output_next_tokens",
                s.contextless_output_next_tokens.clone().into(),
            ),
            (
                "prompt_user_for_contextless_output_next_tokens",
                false.into(),
            ),
            (
                "special_tokens_to_keep",
                s.special_tokens_to_keep.clone().into(),
            ),
            (
                "decoder_input_output_separator",
                s.decoder_input_output_separator.clone().into(),
            ),
            (
                "context_sensitivity_std_threshold",
                num(s.context_sensitivity_std_threshold),
            ),
            (
                "context_sensitivity_topk",
                s.context_sensitivity_topk.map_or(Value::Null, Value::from),
            ),
            (
                "attribution_std_threshold",
                num(s.attribution_std_threshold),
            ),
            (
                "attribution_topk",
                s.attribution_topk.map_or(Value::Null, Value::from),
            ),
            (
                "show_intermediate_outputs",
                s.show_intermediate_outputs.into(),
            ),
            ("save_path", opt(&s.save_path)),
            ("add_output_info", s.add_output_info.into()),
            ("viz_path", opt(&s.viz_path)),
            ("show_viz", s.show_viz.into()),
            ("input_current_text", s.input_current_text.clone().into()),
            ("input_context_text", opt(&s.input_context_text)),
            ("input_template", self.input_template.clone().into()),
            ("output_context_text", opt(&s.output_context_text)),
            ("output_current_text", opt(&s.output_current_text)),
            ("output_template", self.output_template.clone().into()),
            (
                "contextless_input_current_text",
                self.contextless_input.clone().into(),
            ),
            (
                "contextless_output_current_text",
                self.contextless_output.clone().into(),
            ),
            ("has_input_context", self.has_input_context.into()),
            ("has_output_context", self.has_output_context.into()),
        ];
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }
}
