# packwatch firmware
VERSION = "0.1.0"
FORMAT = 1
