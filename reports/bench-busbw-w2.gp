# busbw against message size at W = 2 (data: bench-busbw-w2.dat)
set terminal pngcairo size 1100,650 noenhanced
set output 'bench-busbw-w2.png'
set title 'bus bandwidth, W = 2 ranks (memcpy bandwidth for reference)'
set logscale x 2
set format x '%.0b %BB'
set logscale y 10
set xlabel 'message size'
set ylabel 'GB/s (log scale)'
set key outside right top
set grid
plot \
  'bench-busbw-w2.dat' index 0 using 1:2 with linespoints lw 3 dt 2 title 'memcpy (1 thread)', \
  'bench-busbw-w2.dat' index 1 using 1:2 with linespoints title 'all reduce fp32 native', \
  'bench-busbw-w2.dat' index 2 using 1:2 with linespoints title 'all reduce fp32 deterministic', \
  'bench-busbw-w2.dat' index 3 using 1:2 with linespoints title 'all reduce bf16 native', \
  'bench-busbw-w2.dat' index 4 using 1:2 with linespoints title 'all reduce bf16 deterministic', \
  'bench-busbw-w2.dat' index 5 using 1:2 with linespoints title 'reduce scatter fp32 native', \
  'bench-busbw-w2.dat' index 6 using 1:2 with linespoints title 'reduce scatter fp32 deterministic', \
  'bench-busbw-w2.dat' index 7 using 1:2 with linespoints title 'reduce scatter bf16 native', \
  'bench-busbw-w2.dat' index 8 using 1:2 with linespoints title 'reduce scatter bf16 deterministic', \
  'bench-busbw-w2.dat' index 9 using 1:2 with linespoints title 'all gather fp32 native', \
  'bench-busbw-w2.dat' index 10 using 1:2 with linespoints title 'broadcast fp32 native'
