# data: equiv-no_shard-bf16load-loss.dat
set terminal pngcairo size 1000,600 noenhanced
set output 'equiv-no_shard-bf16load-loss.png'
set title 'NO_SHARD ↔ ZeRO-0, FSDP loads bf16, no mixed precision; DeepSpeed bf16'
set xlabel 'step'
set ylabel 'loss'
set grid
set key outside right top
set datafile missing 'NaN'
plot \
  'equiv-no_shard-bf16load-loss.dat' index 0 using 1:2 with linespoints pt 7 ps 0.5 title 'FSDP (A)', \
  'equiv-no_shard-bf16load-loss.dat' index 1 using 1:2 with linespoints pt 7 ps 0.5 title 'DeepSpeed (B)'
