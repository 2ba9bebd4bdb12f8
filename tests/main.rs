//! Integration tests: one binary so the heavy crates link once.

mod it;
