# data: equiv-full_shard-divergence.dat
set terminal pngcairo size 1000,600 noenhanced
set output 'equiv-full_shard-divergence.png'
set title 'FULL_SHARD ↔ ZeRO-3: |loss FSDP - loss DeepSpeed| per step'
set xlabel 'step'
set ylabel '|loss gap| (log scale)'
set grid
set key outside right top
set datafile missing 'NaN'
set logscale y 10
plot \
  'equiv-full_shard-divergence.dat' index 0 using 1:2 with linespoints pt 7 ps 0.5 title 'fp32', \
  'equiv-full_shard-divergence.dat' index 1 using 1:2 with linespoints pt 7 ps 0.5 title 'bf16', \
  'equiv-full_shard-divergence.dat' index 2 using 1:2 with linespoints pt 7 ps 0.5 title 'fp16', \
  'equiv-full_shard-divergence.dat' index 3 using 1:2 with linespoints pt 7 ps 0.5 title 'bf16load'
