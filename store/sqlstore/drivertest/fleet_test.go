package drivertest

func runChild() bool { return false }
