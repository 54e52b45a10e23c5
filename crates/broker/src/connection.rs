//! Connection handling.
