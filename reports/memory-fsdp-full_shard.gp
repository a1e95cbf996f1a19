# data: memory-fsdp-full_shard.dat
set terminal pngcairo size 1000,600 noenhanced
set output 'memory-fsdp-full_shard.png'
set title 'FSDP1 FULL_SHARD, gpt-small bf16: predicted peak per rank'
set xlabel 'W (ranks)'
set ylabel 'MiB per rank'
set grid
set key outside right top
set datafile missing 'NaN'
set logscale x 2
plot \
  'memory-fsdp-full_shard.dat' index 0 using 1:2 with linespoints pt 7 ps 0.5 title 'params_master', \
  'memory-fsdp-full_shard.dat' index 1 using 1:2 with linespoints pt 7 ps 0.5 title 'params_gathered', \
  'memory-fsdp-full_shard.dat' index 2 using 1:2 with linespoints pt 7 ps 0.5 title 'grads_sharded', \
  'memory-fsdp-full_shard.dat' index 3 using 1:2 with linespoints pt 7 ps 0.5 title 'grads_unsharded', \
  'memory-fsdp-full_shard.dat' index 4 using 1:2 with linespoints pt 7 ps 0.5 title 'optim_states', \
  'memory-fsdp-full_shard.dat' index 5 using 1:2 with linespoints pt 7 ps 0.5 title 'activations', \
  'memory-fsdp-full_shard.dat' index 6 using 1:2 with linespoints pt 7 ps 0.5 title 'comm_buffers', \
  'memory-fsdp-full_shard.dat' index 7 using 1:2 with linespoints pt 7 ps 0.5 title 'workspace'
