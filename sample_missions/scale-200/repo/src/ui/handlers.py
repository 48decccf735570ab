"""src/ui/handlers.py: synthetic module for the scale-200 mission."""

ui_0005 = "pending"

ui_0007 = "pending"

ui_0010 = "pending"

ui_0013 = "pending"

storage_0014 = "pending"

ui_0015 = "pending"

ui_0016 = "pending"

ui_0022 = "pending"

api_0025 = "pending"

ui_0026 = "pending"

ui_0028 = "pending"

ui_0032 = "pending"

ui_0033 = "pending"

api_0039 = "pending"

ui_0050 = "pending"

api_0052 = "pending"

ui_0053 = "pending"

ui_0054 = "pending"

ui_0057 = "pending"

ui_0058 = "pending"

ui_0064 = "pending"

billing_0067 = "pending"

ui_0069 = "pending"

ui_0072 = "pending"

ui_0074 = "pending"

ui_0076 = "pending"

ui_0082 = "pending"

ui_0085 = "pending"

ui_0086 = "pending"

search_0088 = "pending"

ui_0089 = "pending"

ui_0091 = "pending"

ui_0094 = "pending"

ui_0099 = "pending"

ui_0100 = "pending"

ui_0101 = "pending"

api_0102 = "pending"

ui_0104 = "pending"

api_0109 = "pending"

ui_0112 = "pending"

ui_0113 = "pending"

api_0118 = "pending"

api_0120 = "pending"

ui_0121 = "pending"

ui_0123 = "pending"

billing_0125 = "pending"

ui_0128 = "pending"

api_0129 = "pending"

ui_0133 = "pending"

ui_0134 = "pending"

ui_0138 = "pending"

ui_0140 = "pending"

ui_0141 = "pending"

ui_0142 = "pending"

ui_0144 = "pending"

ui_0148 = "pending"

ui_0154 = "pending"

api_0155 = "pending"

ui_0156 = "pending"

ui_0157 = "pending"

ui_0162 = "pending"

ui_0164 = "pending"

storage_0165 = "pending"

billing_0167 = "pending"

ui_0175 = "pending"

ui_0176 = "pending"

ui_0182 = "pending"

ui_0186 = "pending"

storage_0187 = "pending"

ui_0188 = "pending"

ui_0190 = "pending"

ui_0192 = "pending"

ui_0194 = "pending"

ui_0195 = "pending"

