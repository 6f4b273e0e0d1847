// empty_kernel: does nothing; launched through decodekit.build.launch to measure the launch floor
// (host dispatch cost and the GPU's fixed launch latency) beside a real variant.
// Launch: grid (1,), block (1,). It takes no arguments; the launcher's packed ABI arguments
// are ignored by the driver, which reads as many as the entry declares.
// Time: decodekit.build.launch.host_overhead()
extern "C" __global__ void empty_kernel() {}
