module github.com/veneermesh/veneer/test/tools/spire

go 1.26
