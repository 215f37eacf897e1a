pub mod browser;
pub mod db;
#[macro_use]
pub mod hub;
pub mod logs;
pub mod partner;
pub mod process;
pub mod published;
