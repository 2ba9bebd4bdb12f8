pub mod bad_input;
pub mod common;
pub mod metadata;
pub mod production;
pub mod robust;
pub mod selection;
pub mod specphot;
pub mod prepare;
