WHO = "layer"
