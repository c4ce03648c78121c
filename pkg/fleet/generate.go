package fleet

//go:generate go run ../../hack/schemagen -out ../../schemas
