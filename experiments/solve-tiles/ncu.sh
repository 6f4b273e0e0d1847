#!/usr/bin/env bash
# ncu of the T = 4 pool at B = 256: the tabled SOLVE build, the fastest tiled SOLVE, MMA 2 x 16 x 4
# (on the GPU machine, OUT set: bash experiments/solve-tiles/ncu.sh)
N=gdn_decode_pool_qk4_v8_d128_k_last_t4_l2norm
S="--section SpeedOfLight --section WarpStateStats --section SchedulerStats --section Occupancy --section LaunchStats --section ComputeWorkloadAnalysis --section InstructionStats"
i=0
for d in '{"WARPS":2,"ROWS_PER_WARP":8,"LANES_PER_ROW":16,"REDUCE":1,"CHAIN_SUMS":1,"SOLVE":1}' \
         '{"WARPS":4,"ROWS_PER_WARP":32,"LANES_PER_ROW":16,"REDUCE":1,"CHAIN_SUMS":1,"SOLVE":1,"BLOCK_TILES":16}' \
         '{"WARPS":2,"ROWS_PER_WARP":16,"LANES_PER_ROW":4,"REDUCE":1,"SOLVE":1,"MMA":1}'; do
  i=$((i+1)); echo "$d" > $OUT/ncu_t4_b256_$i.txt
  timeout 60 ncu $S python3 experiments/solve-tiles/one_call.py $N 256 "$d" >> $OUT/ncu_t4_b256_$i.txt 2>&1
  grep -E "Duration|DRAM Throughput|Issue Slots Busy|Registers Per|Achieved Occupancy|No Eligible|Executed Ipc A|One or More" $OUT/ncu_t4_b256_$i.txt | head -12
done
