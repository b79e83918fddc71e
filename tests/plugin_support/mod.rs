//! Test support: builds plugin libraries (cargo test does not build cdylib-only crates, and a
//! build script would deadlock on cargo's lock), and a tiny analytic model served through the
//! SDK's host callback trait.
#![allow(dead_code)]

pub mod build;
pub mod toy_host;
