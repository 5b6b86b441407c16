//! emberscope-agent library.
