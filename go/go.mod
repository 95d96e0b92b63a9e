module nodeport

go 1.22
