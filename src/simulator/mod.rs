//! (placeholder until the simulator lands)
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct SimulatorSettings {}
pub struct Simulator;
pub struct SimulatorHandle;
impl Simulator {
    pub async fn start(_: SimulatorSettings) -> anyhow::Result<SimulatorHandle> {
        anyhow::bail!("placeholder")
    }
}
impl SimulatorHandle {
    pub fn base_url(&self) -> String {
        String::new()
    }
    pub async fn shutdown(self) {}
}
