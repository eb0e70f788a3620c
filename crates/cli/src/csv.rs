//! The supervised CSV format of `simulate --supervised`: a header, numeric
//! feature columns, the last column an integer label in `0..K`.

use std::path::Path;

use crate::error::{CliError, CliResult};

/// Most classes a supervised file may have (the arm-set bound).
const MAX_LABELS: usize = tuneloop_core::MAX_ARMS;

/// A parsed supervised data set.
#[derive(Debug)]
pub(crate) struct Supervised {
    /// Row-major features, `rows × width`.
    pub(crate) features: Vec<f64>,
    pub(crate) width: usize,
    pub(crate) labels: Vec<usize>,
    pub(crate) num_labels: usize,
}

fn split(line: &str) -> Vec<&str> {
    line.split(',')
        .map(|c| c.trim().trim_matches('"'))
        .collect()
}

/// Reads and checks the whole file.
pub(crate) fn read(path: &Path) -> CliResult<Supervised> {
    let name = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::bad(format!("{name}: cannot read: {e}")))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(CliError::bad(format!(
            "{name}: the file is empty (expected a header row)"
        )));
    };
    let columns: Vec<String> = split(header).into_iter().map(str::to_owned).collect();
    if columns.len() < 2 {
        return Err(CliError::bad(format!(
            "{name}: line 1: the header has {} column(s); expected at least one feature and a label",
            columns.len()
        )));
    }
    let width = columns.len() - 1;
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for (idx, line) in lines {
        let lineno = idx + 1;
        let cells = split(line);
        if cells.len() != columns.len() {
            return Err(CliError::bad(format!(
                "{name}: line {lineno}: {} cells, but the header has {} columns",
                cells.len(),
                columns.len()
            )));
        }
        for (c, cell) in cells[..width].iter().enumerate() {
            match cell.parse::<f64>() {
                Ok(v) if v.is_finite() => features.push(v),
                _ => {
                    return Err(CliError::bad(format!(
                        "{name}: line {lineno}, column {} (`{}`): `{cell}` is not a finite number",
                        c + 1,
                        columns[c]
                    )));
                }
            }
        }
        let raw = cells[width];
        let label = raw
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0 && v.fract() == 0.0 && *v < MAX_LABELS as f64)
            .map(|v| v as usize);
        let Some(label) = label else {
            return Err(CliError::bad(format!(
                "{name}: line {lineno}, column {} (`{}`): label `{raw}` is not an integer in 0..{MAX_LABELS}",
                width + 1,
                columns[width]
            )));
        };
        labels.push(label);
    }
    if labels.is_empty() {
        return Err(CliError::bad(format!(
            "{name}: no data rows after the header"
        )));
    }
    let num_labels = labels.iter().copied().max().unwrap_or(0) + 1;
    if num_labels < 2 {
        return Err(CliError::bad(format!(
            "{name}: every label is 0; a bandit needs at least two arms (labels 0 and 1)"
        )));
    }
    Ok(Supervised {
        features,
        width,
        labels,
        num_labels,
    })
}
