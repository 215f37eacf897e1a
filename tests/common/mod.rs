pub mod browser;
pub mod db;
pub mod hub;
pub mod logs;
pub mod partner;
pub mod process;
pub mod published;
