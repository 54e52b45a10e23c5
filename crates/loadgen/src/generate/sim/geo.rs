//! Geometry on a sphere: distances, bearings and destinations in degrees and metres.

/// Mean Earth radius, metres.
pub const EARTH_RADIUS: f64 = 6_371_008.8;

/// Great-circle distance, metres.
pub fn distance(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS * a.sqrt().min(1.0).asin()
}

/// Initial bearing from the first point to the second, degrees in [0, 360).
pub fn initial_bearing(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dl = (lon2 - lon1).to_radians();
    let y = dl.sin() * p2.cos();
    let x = p1.cos() * p2.sin() - p1.sin() * p2.cos() * dl.cos();
    y.atan2(x).to_degrees().rem_euclid(360.0)
}

/// The point `metres` away from (`lat`, `lon`) along `bearing` (degrees) on a sphere.
pub fn destination(lat: f64, lon: f64, bearing: f64, metres: f64) -> (f64, f64) {
    let d = metres / EARTH_RADIUS;
    let (p1, l1, b) = (lat.to_radians(), lon.to_radians(), bearing.to_radians());
    let p2 = (p1.sin() * d.cos() + p1.cos() * d.sin() * b.cos()).asin();
    let l2 = l1 + (b.sin() * d.sin() * p1.cos()).atan2(d.cos() - p1.sin() * p2.sin());
    let lon2 = (l2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0;
    (p2.to_degrees(), lon2)
}

/// The signed turn (degrees, in (-180, 180]) from bearing `from` to bearing `to`.
pub fn angle_difference(from: f64, to: f64) -> f64 {
    let d = (to - from).rem_euclid(360.0);
    if d > 180.0 {
        d - 360.0
    } else {
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry() {
        let (lat, lon) = (52.52, 13.405);
        for bearing in [0.0, 45.0, 90.0, 180.0, 271.0] {
            let (lat2, lon2) = destination(lat, lon, bearing, 1_000.0);
            assert!((distance(lat, lon, lat2, lon2) - 1_000.0).abs() < 1e-6);
            let back = initial_bearing(lat, lon, lat2, lon2);
            assert!(
                angle_difference(bearing, back).abs() < 1e-6,
                "{bearing} {back}"
            );
        }
        // One degree of latitude is about 111.2 km.
        assert!((distance(0.0, 0.0, 1.0, 0.0) - 111_195.0).abs() < 1.0);
        // Across the antimeridian.
        let (_, lon) = destination(0.0, 179.9995, 90.0, 1_000.0);
        assert!((-180.0..-179.99).contains(&lon), "{lon}");
        assert_eq!(angle_difference(350.0, 10.0), 20.0);
        assert_eq!(angle_difference(10.0, 350.0), -20.0);
        assert_eq!(angle_difference(0.0, 180.0), 180.0);
    }
}
