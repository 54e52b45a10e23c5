//! $SYS topics.
