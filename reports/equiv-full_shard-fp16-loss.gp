# data: equiv-full_shard-fp16-loss.dat
set terminal pngcairo size 1000,600 noenhanced
set output 'equiv-full_shard-fp16-loss.png'
set title 'FULL_SHARD ↔ ZeRO-3, fp16 (loss scaling)'
set xlabel 'step'
set ylabel 'loss'
set grid
set key outside right top
set datafile missing 'NaN'
plot \
  'equiv-full_shard-fp16-loss.dat' index 0 using 1:2 with linespoints pt 7 ps 0.5 title 'FSDP (A)', \
  'equiv-full_shard-fp16-loss.dat' index 1 using 1:2 with linespoints pt 7 ps 0.5 title 'DeepSpeed (B)'
