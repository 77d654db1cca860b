//! The dataset layer as a user of the crate sees it.

use msenas::data::{self, augment_static, DataOptions};
use rand::SeedableRng;

#[test]
fn digits_probe_batch_end_to_end() {
    let opts = DataOptions {
        timesteps: 2,
        ..DataOptions::default()
    };
    let d = data::load("digits", &opts).unwrap();
    assert_eq!(d.spec.frame_len(), 16 * 16);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let idx = d.train.stratified(20, &mut rng);
    let mut x = d.train.batch(&idx, 2);
    assert_eq!(x.len(), 2 * 20 * d.spec.frame_len());
    assert_eq!(d.train.labels_of(&idx).len(), 20);
    augment_static(&mut x, 2, 20, 1, 16, 16, 2, &mut rng);
    for name in data::names() {
        assert!(!name.is_empty());
    }
    let err = data::load("nope", &opts).unwrap_err();
    assert!(matches!(err, msenas::Error::Input(_)));
}
