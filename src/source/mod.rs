//! What fills the namespace: the local tree scanner.

pub mod scan;
