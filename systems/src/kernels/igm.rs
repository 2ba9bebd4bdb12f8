//! TODO(kernel igm): not yet implemented.
