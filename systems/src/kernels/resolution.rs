//! TODO(kernel resolution): not yet implemented.
