use crate::{bail, Result};

/// How a tap's feature map is turned into the vectors that are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// Every spatial position (LPIPS).
    Spatial,
    /// The spatial mean of each channel.
    Mean,
    /// Each channel's values sorted ascending, compared rank by rank.
    Sort,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Part::Spatial => "spatial",
            Part::Mean => "mean",
            Part::Sort => "sort",
        }
    }
}

/// One of the paper's five comparison methods: one part, or the sum of two parts with their own weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Spatial,
    Mean,
    Sort,
    SpatialMean,
    SpatialSort,
}

impl Method {
    pub const ALL: [Method; 5] = [
        Method::Spatial,
        Method::Mean,
        Method::Sort,
        Method::SpatialMean,
        Method::SpatialSort,
    ];

    pub fn parse(name: &str) -> Result<Method> {
        match name.to_ascii_lowercase().as_str() {
            "spatial" => Ok(Method::Spatial),
            "mean" => Ok(Method::Mean),
            "sort" => Ok(Method::Sort),
            "spatial+mean" => Ok(Method::SpatialMean),
            "spatial+sort" => Ok(Method::SpatialSort),
            _ => bail!("unknown method {name:?}; choose spatial, mean, sort, spatial+mean or spatial+sort"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Spatial => "spatial",
            Method::Mean => "mean",
            Method::Sort => "sort",
            Method::SpatialMean => "spatial+mean",
            Method::SpatialSort => "spatial+sort",
        }
    }

    pub fn parts(self) -> &'static [Part] {
        match self {
            Method::Spatial => &[Part::Spatial],
            Method::Mean => &[Part::Mean],
            Method::Sort => &[Part::Sort],
            Method::SpatialMean => &[Part::Spatial, Part::Mean],
            Method::SpatialSort => &[Part::Spatial, Part::Sort],
        }
    }
}
