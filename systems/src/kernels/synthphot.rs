//! TODO(kernel synthphot): not yet implemented.
