//! TODO(kernel mwdust): not yet implemented.
