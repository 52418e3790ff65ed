//! The problems a book check finds, shared by every checker: its own module so
//! the checkers and `check`, which runs them, do not import one another.

/// Problems found so far; each is printed when found.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    pub fn add(&mut self, problem: String) {
        eprintln!("  ✘ {problem}");
        self.0.push(problem);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
