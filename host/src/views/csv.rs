//! Tidy CSV: one row per visible score (NaN cells skipped), for pandas, R or a spreadsheet.

use crate::output::FeatureAttributionOutput;

use super::matrix;
use super::ViewError;

/// The header row, in column order.
pub(crate) const HEADER: [&str; 7] = [
    "sequence",
    "step",
    "generated_token",
    "attributed_side",
    "attributed_index",
    "attributed_token",
    "score",
];

/// The CSV bytes: [`HEADER`], then per sequence, side, generated step and attributed token one
/// row; `step` is the generated token's position in the target and tokens are the raw strings.
pub(crate) fn render(out: &FeatureAttributionOutput) -> Result<Vec<u8>, ViewError> {
    let views = matrix::sequences(out)?;
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record(HEADER)?;
    for view in &views {
        for heatmap in &view.heatmaps {
            for (j, generated) in view.generated.iter().enumerate() {
                for (i, attributed) in heatmap.rows.iter().enumerate() {
                    let score = heatmap.get(i, j);
                    if score.is_nan() {
                        continue;
                    }
                    w.write_record([
                        view.index.to_string(),
                        (view.first_step + j).to_string(),
                        generated.token.clone(),
                        heatmap.side.name().to_string(),
                        i.to_string(),
                        attributed.token.clone(),
                        score.to_string(),
                    ])?;
                }
            }
        }
    }
    w.into_inner()
        .map_err(|e| ViewError::Csv(::csv::Error::from(e.into_error())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::test_data;

    fn rows(out: &FeatureAttributionOutput) -> Vec<Vec<String>> {
        let bytes = render(out).unwrap();
        let mut r = ::csv::Reader::from_reader(bytes.as_slice());
        assert_eq!(r.headers().unwrap(), HEADER.as_slice());
        r.records()
            .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
            .collect()
    }

    #[test]
    fn values_equal_the_tensors_and_nan_cells_are_skipped() {
        let out = test_data::two_sequences();
        let rows = rows(&out);
        let views = matrix::sequences(&out).unwrap();
        let visible: usize = views
            .iter()
            .flat_map(|v| v.heatmaps.iter())
            .map(|h| h.values.iter().filter(|v| !v.is_nan()).count())
            .sum();
        assert_eq!(rows.len(), visible);
        for row in &rows {
            let seq: usize = row[0].parse().unwrap();
            let step: usize = row[1].parse().unwrap();
            let index: usize = row[4].parse().unwrap();
            let score: f32 = row[6].parse().unwrap();
            let s = &out.sequence_attributions[seq];
            let (t, tokens) = match row[3].as_str() {
                "source" => (s.source_attributions.as_ref().unwrap(), &s.source),
                "target" => (s.target_attributions.as_ref().unwrap(), &s.target),
                other => panic!("side {other}"),
            };
            let j = step - s.attr_pos_start;
            assert_eq!(score, t.data[index * t.shape[1] + j]);
            assert_eq!(row[2], s.target[step].token);
            assert_eq!(row[5], tokens[index].token);
        }
        // The decoder-only sequence: step 1 (`Ġthere`) sees `ĠHi` only.
        assert_eq!(rows[0], ["0", "1", "Ġthere", "target", "0", "ĠHi", "1"]);
        assert_eq!(rows[1], ["0", "2", "!", "target", "0", "ĠHi", "0.25"]);
    }

    #[test]
    fn quotes_tokens_with_commas_and_quotes() {
        let bytes = render(&test_data::special_tokens()).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains(r#","""q""","#), "{text}");
        let rows = rows(&test_data::special_tokens());
        assert!(rows.iter().any(|r| r[5] == "\"q\""));
    }

    #[test]
    fn empty_output_is_just_the_header() {
        let bytes = render(&FeatureAttributionOutput::default()).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap().trim_end(),
            HEADER.join(",")
        );
    }
}
