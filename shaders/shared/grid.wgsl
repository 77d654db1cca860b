// 1-D work spread over a 2-D grid: a dimension holds at most 65,535 workgroups, so launchers
// split `ceil(len / wg)` groups into x * y and kernels rebuild the flat index here.

fn flat_index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32, wg_size: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * wg_size + lid;
}
