# data: memory-fsdp-shard_grad_op.dat
set terminal pngcairo size 1000,600 noenhanced
set output 'memory-fsdp-shard_grad_op.png'
set title 'FSDP1 SHARD_GRAD_OP, gpt-small bf16: predicted peak per rank'
set xlabel 'W (ranks)'
set ylabel 'MiB per rank'
set grid
set key outside right top
set datafile missing 'NaN'
set logscale x 2
plot \
  'memory-fsdp-shard_grad_op.dat' index 0 using 1:2 with linespoints pt 7 ps 0.5 title 'params_master', \
  'memory-fsdp-shard_grad_op.dat' index 1 using 1:2 with linespoints pt 7 ps 0.5 title 'params_gathered', \
  'memory-fsdp-shard_grad_op.dat' index 2 using 1:2 with linespoints pt 7 ps 0.5 title 'grads_sharded', \
  'memory-fsdp-shard_grad_op.dat' index 3 using 1:2 with linespoints pt 7 ps 0.5 title 'grads_unsharded', \
  'memory-fsdp-shard_grad_op.dat' index 4 using 1:2 with linespoints pt 7 ps 0.5 title 'optim_states', \
  'memory-fsdp-shard_grad_op.dat' index 5 using 1:2 with linespoints pt 7 ps 0.5 title 'activations', \
  'memory-fsdp-shard_grad_op.dat' index 6 using 1:2 with linespoints pt 7 ps 0.5 title 'comm_buffers', \
  'memory-fsdp-shard_grad_op.dat' index 7 using 1:2 with linespoints pt 7 ps 0.5 title 'workspace'
