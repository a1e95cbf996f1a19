# data: equiv-fact-2624.dat
set terminal pngcairo size 1000,600 noenhanced
set output 'equiv-fact-2624.png'
set title 'bf16-loaded FSDP (clipping 1.0, no weight decay) vs DeepSpeed bf16'
set xlabel 'step'
set ylabel 'loss'
set grid
set key outside right top
set datafile missing 'NaN'
plot \
  'equiv-fact-2624.dat' index 0 using 1:2 with linespoints pt 7 ps 0.5 title 'FSDP bf16 load, no MP (optimizer in bf16)', \
  'equiv-fact-2624.dat' index 1 using 1:2 with linespoints pt 7 ps 0.5 title 'FSDP bf16 load, bf16 MP, upcast off (optimizer in bf16)', \
  'equiv-fact-2624.dat' index 2 using 1:2 with linespoints pt 7 ps 0.5 title 'FSDP bf16 load, bf16 MP, upcast auto (fp32 masters)', \
  'equiv-fact-2624.dat' index 3 using 1:2 with linespoints pt 7 ps 0.5 title 'DeepSpeed ZeRO-3 bf16'
