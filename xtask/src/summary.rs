//! Counts passed and failed tests from the closing lines of each runner.

/// Tests passed and failed so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
}

impl Tally {
    /// Reads one output line of `cargo test`, `wasm-bindgen-test-runner` or
    /// `node --test`.
    pub fn read(&mut self, line: &str) {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("test result: ") {
            // cargo / wasm-bindgen-test: "test result: ok. 8 passed; 0 failed; ..."
            self.passed += number_before(rest, " passed");
            self.failed += number_before(rest, " failed");
        } else if let Some(n) = line.strip_prefix("# pass ") {
            self.passed += n.trim().parse().unwrap_or(0);
        } else if let Some(n) = line.strip_prefix("# fail ") {
            self.failed += n.trim().parse().unwrap_or(0);
        }
    }

    pub fn add(&mut self, other: Tally) {
        self.passed += other.passed;
        self.failed += other.failed;
    }

    pub fn line(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failed)
    }
}

fn number_before(text: &str, word: &str) -> usize {
    text.find(word)
        .and_then(|end| text[..end].rsplit(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cargo_wasm_and_node_closing_lines() {
        let mut t = Tally::default();
        for line in [
            "test result: ok. 8 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.12s",
            "test result: FAILED. 7 passed; 1 failed; 0 ignored; 0 measured",
            "test result: ok. 2 passed; 0 failed; 0 ignored; 0 filtered out; finished in 0.75s",
            "# pass 5",
            "# fail 2",
            "ok 1 - something passed",
        ] {
            t.read(line);
        }
        assert_eq!(
            t,
            Tally {
                passed: 22,
                failed: 3
            }
        );
        assert_eq!(t.line(), "22 passed, 3 failed");
    }
}
