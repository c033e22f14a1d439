//! Where regions are from a caller, as Route 53 geoproximity measures it:
//! great-circle distance, scaled by each region's bias. A positive bias
//! grows the area a region serves (its distances count for less), a
//! negative one shrinks it: biased = distance × (1 − bias/100).

/// A point on Earth, in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub latitude: f64,
    pub longitude: f64,
}

impl Point {
    /// `None` unless both are finite and in range.
    pub fn new(latitude: f64, longitude: f64) -> Option<Self> {
        let ok = latitude.is_finite()
            && longitude.is_finite()
            && (-90.0..=90.0).contains(&latitude)
            && (-180.0..=180.0).contains(&longitude);
        ok.then_some(Self {
            latitude,
            longitude,
        })
    }
}

const EARTH_RADIUS_KM: f64 = 6371.0;

/// Great-circle distance in kilometres (haversine).
pub fn distance_km(a: Point, b: Point) -> f64 {
    let (la1, la2) = (a.latitude.to_radians(), b.latitude.to_radians());
    let dla = la2 - la1;
    let dlo = (b.longitude - a.longitude).to_radians();
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// The distance as the choice weighs it, for a region with `bias` (−99…99).
pub fn biased_km(distance: f64, bias: i32) -> f64 {
    distance * (1.0 - f64::from(bias.clamp(-99, 99)) / 100.0)
}

/// The index of the nearest candidate by biased distance; ties go to the
/// first listed. `None` for no candidates.
pub fn nearest(from: Point, candidates: &[(Point, i32)]) -> Option<usize> {
    candidates
        .iter()
        .enumerate()
        .map(|(i, (at, bias))| (i, biased_km(distance_km(from, *at), *bias)))
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lat: f64, lon: f64) -> Point {
        Point::new(lat, lon).unwrap()
    }

    #[test]
    fn distances_are_great_circle() {
        // London to New York is about 5,570 km.
        let d = distance_km(p(51.5074, -0.1278), p(40.7128, -74.0060));
        assert!((d - 5570.0).abs() < 20.0, "{d}");
        assert_eq!(distance_km(p(10.0, 10.0), p(10.0, 10.0)), 0.0);
        // Across the antimeridian is short, not around the world.
        assert!(distance_km(p(0.0, 179.5), p(0.0, -179.5)) < 120.0);
        assert!(Point::new(91.0, 0.0).is_none() && Point::new(0.0, f64::NAN).is_none());
    }

    #[test]
    fn bias_moves_the_boundary_between_two_regions() {
        // Two regions on the equator 20° apart; a caller 1° west of the
        // midpoint is nearer the west one.
        let (west, east) = (p(0.0, 0.0), p(0.0, 20.0));
        let caller = p(0.0, 9.0);
        assert_eq!(nearest(caller, &[(west, 0), (east, 0)]), Some(0));
        // A bias of +25 on the east one pulls the caller over…
        assert_eq!(nearest(caller, &[(west, 0), (east, 25)]), Some(1));
        // …and −25 on it pushes even a caller east of the midpoint west.
        assert_eq!(nearest(p(0.0, 11.0), &[(west, 0), (east, -25)]), Some(0));
        // The boundary with east +25: biased equality at x where
        // x = 0.75 × (20 − x), x ≈ 8.57°.
        assert_eq!(nearest(p(0.0, 8.5), &[(west, 0), (east, 25)]), Some(0));
        assert_eq!(nearest(p(0.0, 8.7), &[(west, 0), (east, 25)]), Some(1));
        assert_eq!(nearest(caller, &[]), None);
    }
}
