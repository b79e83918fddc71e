//! The attributed sides of a sequence and their endpoints: the actual input (or layer
//! activation) and the baseline, from which path methods build their interpolation points.

use crate::data::{AttributionRequest, ModelKind, Side};
use crate::error::{ErrorCode, PluginError};
use crate::host::Host;
use crate::requests::{InputPoint, PointSide, Wrt};
use crate::tensor::Tensor;

/// Which input sides a method attributes: the source on encoder-decoder models, the target when
/// `attribute_target` (always, on decoder-only models, where the prompt is on the target side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributedSides {
    /// Attribute the encoder input.
    pub source: bool,
    /// Attribute the decoder input.
    pub target: bool,
}

impl AttributedSides {
    /// The sides an input-embedding method attributes for `request`.
    pub fn of(host: &Host<'_>, request: &AttributionRequest) -> Self {
        let enc_dec = host.info().kind == ModelKind::EncoderDecoder;
        Self {
            source: enc_dec,
            target: request.attribute_target || !enc_dec,
        }
    }

    /// Both sides (layer taps: the host says where the module is by returning a non-empty side).
    pub fn both() -> Self {
        Self {
            source: true,
            target: true,
        }
    }

    /// Whether `side` is attributed.
    pub fn has(self, side: Side) -> bool {
        match side {
            Side::Source => self.source,
            Side::Target => self.target,
        }
    }
}

/// One attributed side of a sequence: its actual values and (when used) its baseline, both
/// `(len, hidden)`.
#[derive(Debug, Clone)]
pub struct SideEnds {
    /// The actual input (or layer activation).
    pub x: Tensor,
    /// The baseline input (or layer activation at the baseline input).
    pub b: Option<Tensor>,
}

impl SideEnds {
    /// Number of positions.
    pub fn len(&self) -> usize {
        self.x.shape[0]
    }

    /// Whether the side has no position.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Width of one position.
    pub fn hidden(&self) -> usize {
        self.x.shape.get(1).copied().unwrap_or(1)
    }

    /// The baseline, which methods with baselines always load.
    pub fn baseline(&self) -> Result<&Tensor, PluginError> {
        self.b
            .as_ref()
            .ok_or_else(|| PluginError::plugin("baselines were not loaded"))
    }

    /// `x − x′`, flat.
    pub fn diff(&self) -> Result<Vec<f32>, PluginError> {
        let b = self.baseline()?;
        Ok(self
            .x
            .data
            .iter()
            .zip(b.data.iter())
            .map(|(x, b)| x - b)
            .collect())
    }

    /// `x′ + α (x − x′)` as a `(len, hidden)` tensor: the straight-line path point at `alpha`.
    pub fn lerp(&self, alpha: f32) -> Result<Tensor, PluginError> {
        let b = self.baseline()?;
        let data = self
            .x
            .data
            .iter()
            .zip(b.data.iter())
            .map(|(x, b)| b + alpha * (x - b))
            .collect();
        Tensor::new(self.x.shape.to_vec(), data)
    }
}

/// The attributed sides of one sequence with their actual and baseline values.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Source side, when attributed (and non-empty).
    pub source: Option<SideEnds>,
    /// Target side, when attributed (and non-empty).
    pub target: Option<SideEnds>,
}

impl Endpoints {
    /// Loads the actual values (and the baselines when `with_baselines`) of sequence `i` at
    /// `wrt`, keeping the attributed, non-empty sides.
    pub fn load(
        host: &Host<'_>,
        i: usize,
        wrt: &Wrt,
        sides: AttributedSides,
        with_baselines: bool,
    ) -> Result<Self, PluginError> {
        let x = host.inputs(i, wrt)?;
        let b = if with_baselines {
            Some(host.baselines(i, wrt)?)
        } else {
            None
        };
        let (bs, bt) = match b {
            Some(p) => (Some(p.source), Some(p.target)),
            None => (None, None),
        };
        let source = keep(sides.source, x.source, bs, "source")?;
        let target = keep(sides.target, x.target, bt, "target")?;
        if source.is_none() && target.is_none() {
            return Err(PluginError::new(
                ErrorCode::Host,
                format!("the host returned no attributable input for {wrt:?}"),
            ));
        }
        Ok(Self { source, target })
    }

    /// The sides, source first, tagged with their [`Side`].
    pub fn sides(&self) -> impl Iterator<Item = (Side, &SideEnds)> {
        [(Side::Source, &self.source), (Side::Target, &self.target)]
            .into_iter()
            .filter_map(|(s, e)| e.as_ref().map(|e| (s, e)))
    }

    /// The side `side`, if attributed.
    pub fn side(&self, side: Side) -> Option<&SideEnds> {
        if side == Side::Source {
            self.source.as_ref()
        } else {
            self.target.as_ref()
        }
    }

    /// A point whose attributed sides are `f(side, ends)` and whose other sides are actual.
    pub fn point(
        &self,
        mut f: impl FnMut(Side, &SideEnds) -> Result<Tensor, PluginError>,
    ) -> Result<InputPoint, PluginError> {
        let mut value = |side: Side| -> Result<PointSide, PluginError> {
            Ok(match self.side(side) {
                Some(e) => PointSide::Values(f(side, e)?),
                None => PointSide::Actual,
            })
        };
        Ok(InputPoint {
            source: value(Side::Source)?,
            target: value(Side::Target)?,
        })
    }

    /// The straight-line path point `x′ + α (x − x′)` on every attributed side.
    pub fn lerp_point(&self, alpha: f32) -> Result<InputPoint, PluginError> {
        self.point(|_, e| e.lerp(alpha))
    }

    /// The baseline point: baselines on the attributed sides, actual inputs elsewhere.
    pub fn baseline_point(&self) -> Result<InputPoint, PluginError> {
        self.point(|_, e| e.baseline().cloned())
    }
}

/// `Some(ends)` when the side is attributed and non-empty, its baseline (if any) checked.
fn keep(
    on: bool,
    x: Tensor,
    b: Option<Tensor>,
    side: &str,
) -> Result<Option<SideEnds>, PluginError> {
    if !on || x.shape.first().copied().unwrap_or(0) == 0 {
        return Ok(None);
    }
    if let Some(b) = &b {
        if b.shape != x.shape {
            return Err(PluginError::new(
                ErrorCode::ShapeMismatch,
                format!(
                    "{side} baseline {:?} does not match the input {:?}",
                    &b.shape[..],
                    &x.shape[..]
                ),
            ));
        }
    }
    Ok(Some(SideEnds { x, b }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ToyHost, TOY_HIDDEN};

    #[test]
    fn toy_endpoints_and_points() {
        let toy = ToyHost::new(&[1, 2, 3], 1);
        let host = toy.host();
        let sides = AttributedSides::of(&host, toy.request());
        assert_eq!(
            sides,
            AttributedSides {
                source: false,
                target: true
            }
        );
        assert!(sides.has(Side::Target) && !sides.has(Side::Source));
        let ends = Endpoints::load(&host, 0, &Wrt::InputEmbeddings, sides, true).unwrap();
        assert!(ends.source.is_none());
        let t = ends.target.as_ref().unwrap();
        assert_eq!((t.len(), t.hidden()), (3, TOY_HIDDEN));
        let one = t.lerp(1.0).unwrap();
        assert!(one
            .data
            .iter()
            .zip(&t.x.data)
            .all(|(a, b)| (a - b).abs() < 1e-6));
        assert_eq!(&t.lerp(0.0).unwrap(), t.baseline().unwrap());
        let d = t.diff().unwrap();
        let half = t.lerp(0.5).unwrap();
        let b = &t.baseline().unwrap().data;
        for ((h, b), d) in half.data.iter().zip(b).zip(&d) {
            assert!((h - (b + 0.5 * d)).abs() < 1e-6);
        }
        assert_eq!(ends.sides().count(), 1);
        let p = ends.lerp_point(0.5).unwrap();
        assert_eq!(p.source, PointSide::Actual);
        assert_eq!(p.target, PointSide::Values(half));
        let b = ends.baseline_point().unwrap();
        assert_eq!(b.target, PointSide::Values(t.baseline().unwrap().clone()));
    }

    #[test]
    fn baselines_are_optional() {
        let toy = ToyHost::new(&[1, 2, 3], 1);
        let host = toy.host();
        let sides = AttributedSides::both();
        let ends = Endpoints::load(&host, 0, &Wrt::InputEmbeddings, sides, false).unwrap();
        // The toy model is decoder-only: its empty source side is dropped.
        assert!(ends.source.is_none());
        let e = ends.target.unwrap().lerp(0.5).unwrap_err();
        assert_eq!(e.code, ErrorCode::Plugin);
    }
}
