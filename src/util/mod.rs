//! Small helpers shared by the library and the command line.

pub mod duration;

pub use duration::{format_duration, parse_duration, DurationError};
