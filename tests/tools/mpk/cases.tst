# mpk cases: CODE GOLDEN COMMAND (htslib .tst shape). Run in a scratch dir
# holding the files of tests/fixtures. CODE: P exit 0, stdout compared
# with expected/GOLDEN; N exit 1 and U exit 2, stderr compared with
# expected/GOLDEN. GOLDEN "." compares nothing. MM_REGEN=1 rewrites goldens.
P . mpk pack --kind clinical -o small.mpk small.tsv
P cat-small.jsonl mpk cat small.mpk
P cat-records.jsonl mpk cat -r small.mpk
P head-2.jsonl mpk head -n 2 small.mpk
P info-small.txt mpk info small.mpk
P . mpk verify small.mpk
P . mpk pack --kind omics --block mRNA -o expr.mpk expr.csv
P cat-expr-full.jsonl mpk cat --full expr.mpk
P cat-two.jsonl sh -c "cat small.mpk expr.mpk | mpk cat -r"
P pack-stdin.jsonl sh -c "mpk pack --kind clinical --id fromstdin - < small.tsv | mpk cat -r"
P cat-label.jsonl sh -c "mpk pack --kind clinical --label-col grade --time-unit days --event-value 2 small.tsv | mpk head -n 1"
N err-short-row.txt mpk pack --kind clinical short-row.csv
N err-missing.txt mpk cat no-such-file.mpk
N err-text.txt mpk verify small.tsv
N err-col.txt mpk pack --kind clinical --time-col nope small.tsv
U err-kind.txt mpk pack --kind genome small.tsv
U err-nokind.txt mpk pack small.tsv
U err-level.txt mpk pack --kind omics --level 99 expr.csv
U err-both.txt mpk pack --kind clinical --event-value 2 --censored-value 1 small.tsv
U err-lines.txt mpk head -n -1 small.mpk
U . mpk frobnicate
U . mpk cat --no-such-option small.mpk
