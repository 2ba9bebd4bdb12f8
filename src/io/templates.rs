//! Template file reader (owned by the templates helper).
