//! TODO(kernel sfd): not yet implemented.
