//! TODO(kernel stats): not yet implemented.
