# data: equiv-hybrid_shard-bf16load-loss.dat
set terminal pngcairo size 1000,600 noenhanced
set output 'equiv-hybrid_shard-bf16load-loss.png'
set title 'HYBRID_SHARD ↔ ZeRO++ hpZ (ZeRO-3, zero_hpz_partition_size 2), FSDP loads bf16, no mixed precision; DeepSpeed bf16'
set xlabel 'step'
set ylabel 'loss'
set grid
set key outside right top
set datafile missing 'NaN'
plot \
  'equiv-hybrid_shard-bf16load-loss.dat' index 0 using 1:2 with linespoints pt 7 ps 0.5 title 'FSDP (A)', \
  'equiv-hybrid_shard-bf16load-loss.dat' index 1 using 1:2 with linespoints pt 7 ps 0.5 title 'DeepSpeed (B)'
