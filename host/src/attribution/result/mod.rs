//! RESULT: what the host keeps of a method's answer. Each result is checked against its
//! request and masked (`check.rs`), step scores are recorded (`step_scores.rs`), and the run
//! becomes Inseq's output (`output.rs`).

pub mod check;
pub mod output;
pub mod step_scores;

pub use output::{sequence_class, sequence_view, to_output};
