//! Background tasks owned by a running service: aborted when it is dropped,
//! so a service stopped inside a larger process leaves nothing behind.

use tokio::task::JoinHandle;

#[derive(Debug, Default)]
pub struct Background(Vec<JoinHandle<()>>);

impl Background {
    pub fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.0.push(tokio::spawn(task));
    }

    pub fn adopt(&mut self, handle: JoinHandle<()>) {
        self.0.push(handle);
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
