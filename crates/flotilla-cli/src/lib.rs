//! The `flotilla` command tree (clap) and its printers.
