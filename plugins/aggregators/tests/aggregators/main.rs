//! Unit tests of every aggregator plugin, run through the same param parsing as the host.

mod common;
mod inseq_reference;
mod pair;
mod schema;
mod scores;
mod slices;
mod spans;
mod split;
mod subwords;
