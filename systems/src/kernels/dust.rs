//! TODO(kernel dust): not yet implemented.
