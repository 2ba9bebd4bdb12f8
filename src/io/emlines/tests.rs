//! Tests of the line-table and constraint readers.
