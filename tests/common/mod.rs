pub mod browser;
pub mod db;
pub mod hub;
pub mod logs;
pub mod process;
