//! [`Progress`]: counts the host requests of one `attribute` call and reports them to the host,
//! which may cancel.

use crate::error::PluginError;
use crate::host::Host;

/// Progress over all the host requests of one `attribute` call.
#[derive(Debug, Clone)]
pub struct Progress {
    done: u64,
    total: u64,
}

impl Progress {
    /// A counter expecting `total` chunks (at least one).
    pub fn new(total: u64) -> Self {
        Self {
            done: 0,
            total: total.max(1),
        }
    }

    /// One chunk done: tells the host, which answers `Err(Cancelled)` when the user cancelled.
    pub fn tick(&mut self, host: &Host<'_>) -> Result<(), PluginError> {
        self.done += 1;
        self.total = self.total.max(self.done);
        host.progress(self.done, self.total)
    }

    /// Chunks done so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// Chunks expected in all (grows if more are done).
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ToyHost;

    #[test]
    fn counts_and_grows() {
        let toy = ToyHost::new(&[1, 2], 1);
        let host = toy.host();
        let mut p = Progress::new(0);
        assert_eq!((p.done(), p.total()), (0, 1));
        p.tick(&host).unwrap();
        p.tick(&host).unwrap();
        assert_eq!((p.done(), p.total()), (2, 2));
    }
}
