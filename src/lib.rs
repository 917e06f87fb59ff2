//! # scraipe
//!
//! Scrape links, analyze what comes back, keep the results in a workflow — on a small
//! work-stealing runtime of our own ([`rt`]).
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod demo;
pub mod rt;
